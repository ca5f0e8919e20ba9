"""Torch modules only (tensors stay inside this package and model internals).

- :mod:`.unet`: the Noise2Noise U-Net
- :mod:`.autoencoder`: AE / AESc
- :mod:`.flow`: U-Flow's invertible blocks and U-shaped flow
"""
