from ganops.cli import main

main()
