"""The model runtime: a base model loaded once (`loading`, built-in and GGUF models), the engine that
runs it (torch in this process, llama.cpp's server, or a remote inference server), resident adapters
switched without reloading it, and decoding with the stop rule of the prompt format (`generation`)."""
