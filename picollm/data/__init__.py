"""Data sources (the story generator, text files, TinyStories), preparation, splits and token caches."""
