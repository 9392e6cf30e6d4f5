from ganops.entry import main

main()
