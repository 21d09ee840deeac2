"""The model families, their configs, presets and registry."""
