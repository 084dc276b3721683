"""The indexing job and the index format the service reads.

readers  manifests, corpora, folders, tar shards -> Records
video    PyAV frame sampling (whole video + per segment)
embed    DataLoader decode workers, batched embedding
runner   the resumable, shardable job; add / remove
build    FAISS factory strings, `auto`, GPU
store    SQLite metadata per vector
publish  versions and the atomic CURRENT switch
search   open_index / LoadedIndex.search / check_compatible (used by app/)
"""
