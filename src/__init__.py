"""FCN semantic segmentation in Keras 3: datasets, tf.data pipeline, FCN-32s/16s/8s,
training, evaluation, prediction and plots. Import the modules you need, e.g.
``from src.fcn import build_fcn``."""
