region     = "us-east"
edge_nodes = 3
