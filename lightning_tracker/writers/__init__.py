"""Writers: the background pipeline that turns logged data into files (private).

Producers hand items to one flusher; one mirror copies finished files to the store.
Hyperparameters, the environment and `sync` of spooled runs live here too.
"""
