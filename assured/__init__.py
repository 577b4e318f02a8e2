"""The assured pipeline: from a model's completions to tests that ran, passed and add something.

It needs no model: checks and structural repairs before anything runs (`checks`), the sandbox
(`sandbox/`), oracle repair (`oracles`, `observing`), mutants, shaping (`minimize`), variations of
the delivered calls (`argument_variation`) and the selection (`assure`); Java's stages run with the
JUnit runner (`assure_java`, `java_runner`). `delivery` is its entry: completions in, insertions out.
"""
