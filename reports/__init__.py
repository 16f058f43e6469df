"""HTML reports, AMT sheets and the local study page."""
