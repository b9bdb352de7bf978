"""Runs after they ran: edit, archive, delete, collect garbage, account for, import and export.

A layer above both ``writers`` (it writes edits and change objects the way a writer does)
and ``read`` (it finds runs the way ``Store`` does); below the command line, which prints
what these modules return. Imports neither torch nor Lightning.
"""
