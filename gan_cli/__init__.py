"""gan-cli: train Goodfellow et al. (2014) GANs from the command line."""

__version__ = "0.1.0"
