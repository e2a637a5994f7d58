"""The transfer sweep: cells (one per target, method, sparsity and seed), their ids and result files
(``cells``), the loop that runs them locally or on Ray (``executors``), one cell's computation (``run_cell``), the
rows it records (``records``), the sanity-check modifiers (``modifiers``) and the IRP-on-target oracle (``oracle``).

Nothing is imported here: the report reads ``records`` without torch."""
