region     = "eu-west"
edge_nodes = 2
