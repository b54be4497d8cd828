"""Model hosting on TUF: the publishing side (repository.py), the device side (client.py), installed versions
(store.py). No threads and no daemon here: edged/app drives these modules off the hot path.
"""
