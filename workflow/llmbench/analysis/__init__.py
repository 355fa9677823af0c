"""Analysis of measured rows: tables, quality figures, the roofline."""
