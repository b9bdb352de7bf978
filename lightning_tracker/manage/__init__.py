"""Runs after they ran: delete, collect garbage, account for, import and export.

A layer above both ``writers`` (it writes runs and change objects the way a writer does)
and ``read`` (it finds runs the way ``Store`` does); below the command line, which prints
what these modules return. Edits of one run (tags, note, name, archive) are ``Run``'s own
methods (:mod:`lightning_tracker.read.edits`). Imports neither torch nor Lightning.
"""
