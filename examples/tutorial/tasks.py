def fetch(city):
    return {"city": city, "temps": [3, 5, 4]}

def clean(fetch):
    return {"city": fetch["city"], "mean": sum(fetch["temps"]) / len(fetch["temps"])}
