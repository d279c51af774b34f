"""tfmood: music mood and theme recognition on MTG-Jamendo with Keras 3 / TensorFlow."""

__version__ = "0.1.0"
