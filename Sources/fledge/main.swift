print("fledge")
