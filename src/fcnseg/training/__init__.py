"""Training: the loop on ``model.fit`` with Keras' callbacks (`loop`), the losses (`losses`),
``tf.distribute`` strategies (`distribute`) and what a run leaves behind (`record`).
"""
