"""Task functions for the root ``Pipelinefile.yaml`` (the "weather" pipeline).

``weather`` generates and cleans synthetic sensor readings and aggregates them;
``report`` turns the aggregates into a human-readable text report. Every
function takes keyword arguments only: the ``args`` of its task plus one
argument per entry in ``needs``.
"""
