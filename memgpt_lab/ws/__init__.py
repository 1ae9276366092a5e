"""WebSocket adapters: the MemGPT protocol's frames and the interfaces that send them."""
