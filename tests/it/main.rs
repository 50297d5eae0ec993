mod apiserver;
