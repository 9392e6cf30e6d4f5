"""Image data: sources that read raw datasets and the prepared arrays the stages share."""
