"""The model families (k-gram MLP, LSTM, Transformer), their configs and presets, and the registry that builds them."""
