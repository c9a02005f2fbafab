//! The host <-> agent wire protocol (see PROTOCOL.md).
