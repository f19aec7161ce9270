"""erase_langchain: see the corresponding issue; nothing public yet."""

__all__: list[str] = []
