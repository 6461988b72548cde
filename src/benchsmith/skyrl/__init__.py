"""SkyRL tool-use datasets: MCP tool inventories, tool plans, SkyRL rows and a reference reward."""
