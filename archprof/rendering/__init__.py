"""Turning archprof's data into tables and files; knows nothing about counting."""
