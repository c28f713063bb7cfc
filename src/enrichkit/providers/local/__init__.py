"""The embedded local model: llama.cpp in-process (``provider``), the grammar its answers are decoded under
(``grammar``), what its prompt adds to the task's (``prompting``), and the model file (``weights``)."""
