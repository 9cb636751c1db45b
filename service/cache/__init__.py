"""Result cache in front of the engines: in-process LRU (L1) and Redis (L2)."""
