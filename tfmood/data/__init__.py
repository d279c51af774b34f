"""Data: the TFRecord schema, conversion, the tf.data pipelines, augmentation and the demo dataset."""
