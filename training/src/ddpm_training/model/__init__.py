"""The network only: the seed's U-Net, its layers and its configuration (presets)."""
