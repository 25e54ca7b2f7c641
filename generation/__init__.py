"""DSDG generator stage: the training data (``dataset``), the losses of docs/ORIGINAL.md 2.6 (``losses``), the
training loop (``trainer``), paired sampling into the crop tree (``sampling``) and the LightCNN
identity-network trainer (``lightcnn_trainer``). The stage scripts ``train_generator.py``,
``generated.py`` and ``train_lightcnn.py`` at the repository root are thin wrappers around these.
"""
