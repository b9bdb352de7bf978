"""Writers: everything that turns logged data into files (private)."""
