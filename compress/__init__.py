"""Export and quantization backends (one module each) and the `compress` stage."""
