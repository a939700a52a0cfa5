"""The engines under the task API: ``base`` (the Engine / Session interface every
engine shares, and the choice between them), ``python`` (model/forward.py over a
kernel backend), ``native`` (cffi over libpocketlm's C engine, the default) and
``templates`` (turn templates). Importing the package loads none of them.
"""
