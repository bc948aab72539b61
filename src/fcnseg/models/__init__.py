"""The models: FCN-32s/16s/8s (`fcn`) on an encoder (`encoders`: VGG16, MobileNetV2), VGG16's
fc6/fc7 as convolutions (`vgg_fc`), the dtype policy a model runs at (`precision`), and the models
that ship in this folder, found by name (`pretrained`).
"""
