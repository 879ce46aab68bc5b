"""Fine-tune a BERT-family encoder for NER.

python train.py model=mbert_cased dataset=wikiann_bn     # the tutorial's run
python train.py experiment=quickstart                    # offline demo on CPU
python train.py -m sweep=lr_epochs                       # an Optuna search
python train.py --help                                   # config groups and options
"""

from ner_experiments.cli import make_main

main = make_main()

if __name__ == "__main__":
    main()
