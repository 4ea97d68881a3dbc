"""The library as its owner sees it: getting files out under usable names, removing
clips and assets (with a record), collecting unreferenced files, and ``info``."""
