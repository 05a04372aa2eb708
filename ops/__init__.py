"""Operations: the `platograph` command, the supervisor behind `platograph up`, embedded servers, loading,
evaluation and the worker launchers. The only code that may import several services."""
