"""The Keras and Neataptic faces: layers, Sequential and its fit loop, losses,
callbacks, checkpoints, distributed training, architect. They build on the core
(grukit.modules, grukit.mingru) and are imported by formats/, serving/ and app/."""
