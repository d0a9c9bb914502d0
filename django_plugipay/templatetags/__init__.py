"""Template tags for pages that show data from Plugipay or a buyer."""
