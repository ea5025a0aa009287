"""Asynchronous provider tasks: the journal that keeps them across processes."""
