print("dfe")
