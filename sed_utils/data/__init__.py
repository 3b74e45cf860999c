"""Datasets: ESC-50 (:mod:`.esc50`), DESED-format strong labels (:mod:`.desed`) and their statistics
(:mod:`.label_stats`), the synthetic demo data (:mod:`.demo_sounds`, :mod:`.demo_data`), mixed scenes
(:mod:`.scene_mixing`, :mod:`.scenes`), which datasets a config needs and how they are fetched and
checked (:mod:`.registry`), and the switch between the two test sets (:mod:`.test_sets`)."""
