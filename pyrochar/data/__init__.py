"""Reading, downloading, preprocessing and splitting Omniglot drawings."""
