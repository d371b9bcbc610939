import os
import sys

# Keras 3 must run on the torch backend; the choice is read once, at import.
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, os.path.dirname(__file__))
