"""image-classification: the top-k labels of an image (ViT, ConvNeXT, any image classifier)."""
