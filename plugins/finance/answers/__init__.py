"""Answers that are not programs: table-cell lookup, text answers, and each answer's scale."""
