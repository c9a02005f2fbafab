//! A ptrace process debugger served through gdbstub.
