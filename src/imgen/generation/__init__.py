"""The steps of one generation that pipeline.py strings together: the checked plan, saving
what came back, reading a stream as it arrives, and the outcome a command reports."""
