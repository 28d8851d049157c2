"""What the figures were measured on: kept with every saved result, so numbers from two machines are not compared blind."""
import os
import platform


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (what ``platform`` knows where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def machine() -> dict:
    """The CPU, cores, memory, system, Python and load average, as a JSON-ready dict."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": round(memory / 2**30, 1),
            "system": f"{platform.system()} {platform.release()}",
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "load_average": [round(x, 2) for x in os.getloadavg()]}
