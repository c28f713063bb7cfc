"""Scrapers that turn public sources into rows for enrichkit."""
