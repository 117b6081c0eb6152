import FerryCLI

await Ferry.execute()
